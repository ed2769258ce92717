# pgrotate: build the Lambda bootstraps, run the tests, lint, run the demo.
SHELL   := /bin/bash
LAMBDAS := rotator preflight cloneuser setpassword testlogin checkreplicas redeploy checkrollout bootstrap evidence
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
	@rm -f $(BUILD)/pgtest-counts.txt
	PGTEST_COUNT_FILE=$(CURDIR)/$(BUILD)/pgtest-counts.txt go test -race -count=1 -timeout 60m ./...
	@awk '{n+=$$1; p++} END {printf "integration tests against the PostgreSQL primary+replica: %d, in %d packages\n", n, p}' $(BUILD)/pgtest-counts.txt

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
	rm -rf $(BUILD) cdk.out
