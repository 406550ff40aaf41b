// A burst of spans from the OpenTelemetry JS SDK to a forwarder, as an application would send them.
//
//   node burst.js http|grpc ENDPOINT SERVICE SPANS
//
// ENDPOINT is http://127.0.0.1:PORT/v1/traces (http/protobuf) or http://127.0.0.1:PORT (gRPC). Spans are named
// SERVICE-<n>; the SDK's BatchSpanProcessor sends them in batches of 512 with its default retries (the HTTP
// exporter retries 429/503 up to 5 times, waiting the Retry-After it gets; the gRPC one honours RetryInfo).
// Prints one JSON line: {"spans", "exported", "failed", "errors"} as the exporter itself reported them.
"use strict";

const { TracerProvider, BatchSpanProcessor } = require("@opentelemetry/sdk-trace");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { OTLPTraceExporter: HttpExporter } = require("@opentelemetry/exporter-trace-otlp-proto");
const { OTLPTraceExporter: GrpcExporter } = require("@opentelemetry/exporter-trace-otlp-grpc");

const [protocol, url, service, count] = process.argv.slice(2);
const spans = Number(count);
const inner = protocol === "grpc" ? new GrpcExporter({ url }) : new HttpExporter({ url });
const result = { spans, exported: 0, failed: 0, errors: [] };

// Counts what the exporter reports for every batch (code 0 = success); everything else is the real exporter.
const counting = {
  export(batch, done) {
    inner.export(batch, (outcome) => {
      if (outcome.code === 0) {
        result.exported += batch.length;
      } else {
        result.failed += batch.length;
        result.errors.push(String(outcome.error && outcome.error.message).slice(0, 200));
      }
      done(outcome);
    });
  },
  shutdown: () => inner.shutdown(),
  forceFlush: () => (inner.forceFlush ? inner.forceFlush() : Promise.resolve()),
};

async function main() {
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": service }),
    spanProcessors: [
      new BatchSpanProcessor({ exporter: counting, maxQueueSize: spans, maxExportBatchSize: 512, scheduledDelayMillis: 50 }),
    ],
  });
  const tracer = provider.getTracer("sentryroute-burst");
  for (let i = 0; i < spans; i++) {
    tracer.startSpan(`${service}-${i}`).end();
  }
  await provider.forceFlush();
  await provider.shutdown();
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((error) => {
  process.stderr.write(`burst: ${error.stack || error}\n`);
  process.exit(1);
});
