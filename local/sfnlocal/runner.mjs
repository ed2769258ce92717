// runner.mjs runs one execution (or one redrive) of a state machine definition with
// aws-local-stepfunctions. It is embedded in the Go package sfnlocal and started by it.
//
// stdin, line 1: the run's configuration (JSON, runConfig in machine.go); with
// "validateOnly" it only validates the definition. Later lines are
// commands: "abort" aborts the execution; end of input (the Go side went away) does too.
// stdout: one JSON object per line:
//   {"kind":"event","event":{...}}  an event of the interpreter's event log, as it is
//   {"kind":"task",...}             a Task invocation: phase started | succeeded | failed
//   {"kind":"fatal","message":...}  the run could not start (invalid definition, ...)
// Each Task state is overridden by a local handler that POSTs
// {"execution","resource","state","input","timeoutSeconds"} to the Go server, which answers
// {"output":...} or {"errorType","errorMessage","cause"}.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

function emit(obj) {
  // Writes to a pipe are synchronous on Linux, so nothing is lost at process.exit.
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// TaskError carries the handler's error name, which Retry and Catch match against
// error.name, and the cause (Lambda's JSON error payload), which Catch passes on as Cause
// (the interpreter uses error.message).
class TaskError extends Error {
  constructor(name, cause) {
    super(cause);
    this.name = name;
  }
}

// commands reads stdin: the first line is the configuration, later lines are commands,
// kept until a command handler is set so that an early "abort" is not lost.
function commands(rl) {
  let config;
  let handler = null;
  const pending = [];
  const deliver = (cmd) => (handler ? handler(cmd) : pending.push(cmd));
  const configured = new Promise((resolve, reject) => {
    config = { resolve, reject, done: false };
  });
  rl.on('line', (line) => {
    if (!config.done) {
      config.done = true;
      try {
        config.resolve(JSON.parse(line));
      } catch (err) {
        config.reject(err);
      }
      return;
    }
    deliver(line.trim());
  });
  rl.on('close', () => {
    if (!config.done) {
      config.done = true;
      config.reject(new Error('no configuration on stdin'));
    }
    deliver('abort');
  });
  return {
    configured,
    handle(fn) {
      handler = fn;
      pending.splice(0).forEach(fn);
    },
  };
}

function taskHandler(cfg, name, spec) {
  return async (input) => {
    // The interpreter queues StateEntered/StateRetried and hands them to the event-log
    // reader in microtasks; yielding one macrotask lets them reach stdout before this line.
    await new Promise((resolve) => setImmediate(resolve));
    const base = { kind: 'task', state: name, resource: spec.resource };
    emit({ ...base, phase: 'started', input, timeoutSeconds: spec.timeoutSeconds, timestamp: Date.now() });
    let body;
    try {
      const res = await fetch(cfg.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${cfg.token}` },
        body: JSON.stringify({
          execution: cfg.executionArn,
          resource: spec.resource,
          state: name,
          input,
          timeoutSeconds: spec.timeoutSeconds,
        }),
        // The interpreter fails the state with States.Timeout at the same moment; the
        // abort cancels the Go handler's context.
        signal: AbortSignal.timeout(spec.timeoutSeconds * 1000),
      });
      const text = await res.text();
      if (!res.ok) {
        throw new Error(`local task server: HTTP ${res.status}: ${text}`);
      }
      body = JSON.parse(text);
    } catch (err) {
      if (err.name === 'TimeoutError') {
        throw err; // the state already failed with States.Timeout
      }
      const message = `invoke ${spec.resource}: ${err.message}`;
      body = {
        errorType: 'Lambda.SdkClientException',
        errorMessage: message,
        cause: JSON.stringify({ errorMessage: message, errorType: 'Lambda.SdkClientException' }),
      };
    }
    if (body.errorType !== undefined) {
      emit({ ...base, phase: 'failed', error: body.errorType, cause: body.cause, timestamp: Date.now() });
      throw new TaskError(body.errorType, body.cause);
    }
    emit({ ...base, phase: 'succeeded', output: body.output ?? null, timestamp: Date.now() });
    return body.output ?? null;
  };
}

async function main() {
  const input = commands(createInterface({ input: process.stdin }));
  const cfg = await input.configured;

  const require = createRequire(join(cfg.nodeModules, 'noop.js'));
  const { StateMachine } = require('aws-local-stepfunctions');

  if (cfg.validateOnly) {
    new StateMachine(cfg.definition); // throws if the definition is invalid
    return;
  }
  const machine = new StateMachine(cfg.definition, {
    validationOptions: cfg.noValidate ? { noValidate: true } : undefined,
  });
  const taskResourceLocalHandlers = {};
  for (const [name, spec] of Object.entries(cfg.tasks)) {
    taskResourceLocalHandlers[name] = taskHandler(cfg, name, spec);
  }
  const execution = machine.run(cfg.input, {
    overrides: {
      taskResourceLocalHandlers,
      waitTimeOverrides: cfg.waitTimeOverrides,
      retryIntervalOverrides: cfg.retryIntervalOverrides,
    },
    context: cfg.context,
    noThrowOnAbort: true,
  });
  // Settle the result at once: a rejection nobody awaits yet would crash Node.
  const settled = execution.result.then(
    () => null,
    () => null,
  );

  input.handle((cmd) => {
    if (cmd === 'abort') execution.abort();
  });

  for await (const event of execution.eventLogs) {
    emit({ kind: 'event', event });
  }
  await settled;
}

main().then(
  () => process.exit(0),
  (err) => {
    emit({ kind: 'fatal', message: String(err && err.message ? err.message : err) });
    process.exit(1);
  },
);
