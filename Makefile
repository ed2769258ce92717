# pgrotate: build the Lambda bootstraps, run the tests, lint, run the demo.
SHELL   := /bin/bash
LAMBDAS := rotator preflight cloneuser setpassword testlogin checkreplicas redeploy checkrollout
BUILD   := build
GOFLAGS_LAMBDA := -tags lambda.norpc -trimpath -ldflags '-s -w'

.PHONY: all build test lint demo bench synth clean node_modules
all: lint test

# One bootstrap per Lambda, linux/arm64 for provided.al2023.
build: $(LAMBDAS:%=$(BUILD)/%/bootstrap)

$(BUILD)/%/bootstrap: FORCE
	@mkdir -p $(@D) && rm -f $@
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build $(GOFLAGS_LAMBDA) -o $@ ./cmd/$*

FORCE:

# Node tools (local Step Functions interpreter, asl-validator, Node 22, CDK CLI), from package-lock.json.
node_modules: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

# The whole suite: unit tests, PostgreSQL primary+replica integration tests, state machine
# executions in aws-local-stepfunctions, CDK template assertions, cdk-nag and cdk synth.
test: build node_modules
	go test -race -count=1 -timeout 60m ./... 2>&1 | tee test.log; exit $${PIPESTATUS[0]}
	@grep -h '^pgtest:' test.log | awk '{n+=$$2} END {print "integration tests against PostgreSQL primary+replica:", n+0}'

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

demo: node_modules
	go run ./cmd/pgrotate demo

bench: node_modules
	go run ./cmd/pgrotate bench

synth: build node_modules
	npx --no-install cdk synth -o cdk.out

clean:
	rm -rf $(BUILD) cdk.out test.log
