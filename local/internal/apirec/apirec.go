// Package apirec is what the local AWS models (local/secrets, local/ecs) share to stand in
// for an API in tests: a record of the calls made, oldest first, and per-operation
// interceptors that run before the next call of an operation (to fail it, or to act as a
// concurrent writer); Do frames each call as the SDK client sees it.
package apirec

import (
	"context"
	"sync"

	"github.com/aws/smithy-go"
)

// Recorder records calls of type C and queues interceptors. The zero value is not usable:
// call New.
type Recorder[C any] struct {
	op    func(C) string // the call's operation name
	clone func(C) C      // a copy that shares no slice with the record

	mu        sync.Mutex
	calls     []C
	intercept map[string][]func() error
}

// New returns a Recorder that reads a call's operation with op and copies calls with clone.
func New[C any](op func(C) string, clone func(C) C) *Recorder[C] {
	return &Recorder[C]{op: op, clone: clone, intercept: map[string][]func() error{}}
}

// Record appends c to the record.
func (r *Recorder[C]) Record(c C) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

// Calls returns copies of the calls made so far, oldest first.
func (r *Recorder[C]) Calls() []C {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]C, len(r.calls))
	for i, c := range r.calls {
		out[i] = r.clone(c)
	}
	return out
}

// CallsOf returns the recorded calls of one operation, oldest first.
func (r *Recorder[C]) CallsOf(op string) []C {
	var out []C
	for _, c := range r.Calls() {
		if r.op(c) == op {
			out = append(out, c)
		}
	}
	return out
}

// Intercept queues fn to run once, before the next call of op. Interceptors for one
// operation run in the order they were added, one per call.
func (r *Recorder[C]) Intercept(op string, fn func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.intercept[op] = append(r.intercept[op], fn)
}

// Begin runs the pending interceptor of op, if any, without the lock held (so it may use
// the model), and returns its error.
func (r *Recorder[C]) Begin(op string) error {
	r.mu.Lock()
	var fn func() error
	if q := r.intercept[op]; len(q) > 0 {
		fn = q[0]
		r.intercept[op] = q[1:]
	}
	r.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn()
}

// FailNext makes the next call of op fail with err.
func (r *Recorder[C]) FailNext(op string, err error) {
	r.Intercept(op, func() error { return err })
}

// Log is what a fake API shows its tests of its Recorder; the fake embeds it to have Calls,
// CallsOf, Intercept and FailNext. An interceptor runs without the fake's lock held, so it
// may use the fake (for example to act as a concurrent writer); its error is the call's,
// wrapped as the SDK wraps errors, and the call changes nothing.
type Log[C any] struct{ rec *Recorder[C] }

// Log returns r's Log.
func (r *Recorder[C]) Log() Log[C] { return Log[C]{rec: r} }

// Calls returns copies of the calls made so far, oldest first.
func (l Log[C]) Calls() []C { return l.rec.Calls() }

// CallsOf returns the calls of op, oldest first.
func (l Log[C]) CallsOf(op string) []C { return l.rec.CallsOf(op) }

// Intercept runs fn once, before the next call of op. Interceptors of one operation run in
// the order they were added, one per call.
func (l Log[C]) Intercept(op string, fn func() error) { l.rec.Intercept(op, fn) }

// FailNext makes the next call of op fail with err.
func (l Log[C]) FailNext(op string, err error) { l.rec.FailNext(op, err) }

// API is what Do needs of a fake API beyond its Recorder: its SDK service id and how a call
// keeps the error it returned.
type API[C any] struct {
	Rec     *Recorder[C]
	Service string              // the SDK's ServiceID, as in its OperationError
	SetErr  func(c *C, e error) // stores the returned error in the call
}

// Do runs one call c of a fake API as the SDK client sees it: the operation's pending
// interceptor, then ctx, then run. done (if not nil) completes c from run's output and
// error, still before c is recorded. The error is returned (and recorded) wrapped as the
// SDK wraps an operation's errors.
func Do[C, In, Out any](ctx context.Context, api API[C], c C, in In, run func(context.Context, In) (*Out, error),
	done func(c *C, out *Out, err error)) (*Out, error) {
	out, err := func() (*Out, error) {
		if err := api.Rec.Begin(api.Rec.op(c)); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return run(ctx, in)
	}()
	if done != nil {
		done(&c, out, err)
	}
	if err != nil {
		err = &smithy.OperationError{ServiceID: api.Service, OperationName: api.Rec.op(c), Err: err}
	}
	api.SetErr(&c, err)
	api.Rec.Record(c)
	return out, err
}
