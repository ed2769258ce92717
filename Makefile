# pgrotate: build the Lambda bootstraps, run the tests, lint, run the demo.
SHELL   := /bin/bash
LAMBDAS := rotator preflight cloneuser setpassword testlogin checkreplicas redeploy checkrollout retireprevious rethrow bootstrap evidence
BUILD   := build
GOFLAGS_LAMBDA := -tags lambda.norpc -trimpath -ldflags '-s -w'

.PHONY: all build test lint demo bench synth clean node_modules setup
all: lint test

# What the tests and the demo need, installed if missing (PostgreSQL 15, the postgres OS
# user, the npm tools): see scripts/setup. Quick when everything is there.
setup:
	@scripts/setup

# One bootstrap per Lambda, linux/arm64 for provided.al2023.
build: $(LAMBDAS:%=$(BUILD)/%/bootstrap)

$(BUILD)/%/bootstrap: FORCE
	@mkdir -p $(@D) && rm -f $@
	@echo "building $@ (linux/arm64)"
	@GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build $(GOFLAGS_LAMBDA) -o $@ ./cmd/$*

FORCE:

# Node tools (local Step Functions interpreter, asl-validator, Node 22, CDK CLI), from package-lock.json.
node_modules: setup

# The whole suite: unit tests, PostgreSQL primary+replica integration tests, state machine
# executions in aws-local-stepfunctions, CDK template assertions, cdk-nag and cdk synth.
# internal/testprogress prints each package as it finishes and a closing "N passed, N failed".
test: setup build
	@rm -f $(BUILD)/pgtest-counts.txt
	@go build -o $(BUILD)/testprogress ./internal/testprogress
	@echo "go test -race ./...: compiling the tests, then one line per package as it finishes (about 15 minutes on 2 cores)"
	@set -o pipefail; PGTEST_COUNT_FILE=$(CURDIR)/$(BUILD)/pgtest-counts.txt go test -json -race -count=1 -timeout 60m ./... 2>&1 | $(BUILD)/testprogress
	@awk '{n+=$$1; p++} END {printf "integration tests against the PostgreSQL primary+replica: %d, in %d packages\n", n, p}' $(BUILD)/pgtest-counts.txt

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@go vet ./...
	@go tool -modfile=tools/go.mod staticcheck ./...
	@go tool -modfile=tools/go.mod gocyclo -over 15 $$(git ls-files '*.go' | grep -v '_test\.go$$')
	@go mod tidy -diff
	@cd tools && go mod tidy -diff

# The demo and the bench, built first into build/ (pgrotate and examples/app), so the
# compile shows as a step of its own. ARGS passes flags: make demo ARGS='--rotations 5'.
demo: setup $(BUILD)/demo-binaries
	$(BUILD)/pgrotate demo --app-binary $(BUILD)/app $(ARGS)

bench: setup $(BUILD)/demo-binaries
	$(BUILD)/pgrotate bench --app-binary $(BUILD)/app $(ARGS)

$(BUILD)/demo-binaries: FORCE
	@mkdir -p $(BUILD)
	@echo "building pgrotate and examples/app into $(BUILD)/ (a minute or two the first time; longer on a busy machine)…"
	@go build -o $(BUILD)/pgrotate ./cmd/pgrotate && go build -o $(BUILD)/app ./examples/app

synth: build setup
	npx --no-install cdk synth -o cdk.out

clean:
	rm -rf $(BUILD) cdk.out
