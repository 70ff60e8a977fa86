'use strict';
// Drives opqueue with the google-gax client of opqueue.js and prints what it saw as one JSON
// object; tests/integration/test_node_client.py runs it against a live deployment and checks
// the report. Usage: node scenario.js grpc|rest HOST:PORT PROJECT

const crypto = require('crypto');
const {connect} = require('./opqueue');

const [transport, endpoint, project] = process.argv.slice(2);
const parent = `projects/${project}`;

// A JSON object as a google.protobuf.Struct in protobuf.js's object form.
function struct(object) {
  const value = v => typeof v === 'number' ? {numberValue: v}
    : typeof v === 'string' ? {stringValue: v}
      : typeof v === 'boolean' ? {boolValue: v}
        : {structValue: struct(v)};
  return {fields: Object.fromEntries(Object.entries(object).map(([k, v]) => [k, value(v)]))};
}

// What a failed call carries: its gRPC code and the ErrorInfo gax read from the status.
function failure(error) {
  return {code: error.code, reason: error.reason, domain: error.domain};
}

async function rejected(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail');
}

async function main() {
  const client = connect({transport, endpoint, apiKey: process.env.OPQUEUE_API_KEY});
  const run = (job, input, extra = {}) => client.runJob({parent, job, input: struct(input),
    ...extra}).then(([operation]) => operation);
  const report = {};
  try {
    // promise() on a job that is still running: it resolves once the job has succeeded.
    const sleeping = await run('demo.sleep', {seconds: 0.3, steps: 3}, {labels: {kind: 'slow'}});
    const [value, metadata] = await sleeping.promise();
    report.succeeded = {name: sleeping.name, value: client.toJson(value),
      metadata: client.toJson(metadata)};
    const again = await client.checkRunJobProgress(sleeping.name);
    const [valueAgain] = await again.promise();
    report.succeeded.got = {done: again.done, value: client.toJson(valueAgain)};

    const failing = await run('demo.fail', {code: 'NOT_FOUND', message: 'no luck'});
    const error = await rejected(failing.promise());
    const [failed] = await client.operations.getOperation({name: failing.name});
    report.failed = {name: failing.name, code: error.code, message: error.message,
      status: {code: failed.error.code, details: client.unpack(failed.error.details)},
      metadata: client.unpack([failed.metadata])[0]};

    const gated = await run('test.gate', {gate: crypto.randomUUID()});
    await client.operations.cancelOperation({name: gated.name});
    const cancelledError = await rejected(gated.promise());
    const [cancelled] = await client.operations.getOperation({name: gated.name});
    report.cancelled = {name: gated.name, code: cancelledError.code,
      status: {code: cancelled.error.code, details: client.unpack(cancelled.error.details)},
      metadata: client.unpack([cancelled.metadata])[0]};

    // Two more demo.sleep runs: three in all, so that pages of two make two pages.
    for (let more = 0; more < 2; more++) {
      await (await run('demo.sleep', {seconds: 0})).promise();
    }
    const filter = 'metadata.job = "demo.sleep"';
    report.pages = [];
    let pageToken = '';
    do {
      const [operations, , page] = await client.operations.listOperations(
        {name: parent, filter, pageSize: 2, pageToken}, {autoPaginate: false});
      report.pages.push(operations.map(operation => operation.name));
      pageToken = page.nextPageToken;
    } while (pageToken);

    await client.operations.deleteOperation({name: sleeping.name});
    report.deleted = failure(await rejected(
      client.operations.getOperation({name: sleeping.name})));
  } finally {
    client.close();
  }
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().catch(error => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
