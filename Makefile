# `make test` is the one command that runs every test; `make run` starts a server.
.PHONY: test test-go test-js test-e2e client run node_modules fuzz fuzz-short

test: test-go fuzz-short test-js

test-go:
	go vet ./...
	go test -race -count=1 ./...

test-js: node_modules
	npm run --silent check:client
	npm run --silent test:client
	npm run --silent test:integration
	npm run --silent test:e2e

# The browser tests alone (Debian's chromium, two instances, Redis); `make client` rebuilds client/dist.
test-e2e: node_modules
	npm run --silent test:e2e

client: node_modules
	npm run --silent build:client

node_modules: package-lock.json
	@[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund

# Fuzz targets: `make fuzz` runs each for FUZZTIME; the test command runs each for a count of
# inputs (a time budget can trip the fuzzer's "context deadline exceeded" while it minimises).
FUZZ_TARGETS = server/signaling:FuzzDecodeCandidate server/signaling:FuzzDecodeSDP \
	server/signaling:FuzzDecodeEnvelope server/signaling:FuzzFastDecode server/signaling:FuzzHandle server/signaling:FuzzAppendJSONString \
	server/sioparser:FuzzDecodePacket auth:FuzzVerify server/engineio:FuzzDecodePayload \
	server/engineio:FuzzReadMessage
FUZZTIME ?= 60s

fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; f=$${t#*:}; echo "== $$pkg $$f"; \
		go test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./$$pkg/ || exit 1; done

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=20000x

run:
	go run .
