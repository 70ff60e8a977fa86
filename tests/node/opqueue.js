'use strict';
// An opqueue client built the way a generated Google client (GAPIC) for Node builds itself,
// from nothing but opqueue's published protos (protos/opqueue/v1/*.proto, with the Google
// protos they import, which google-gax ships) and its service config (protos/opqueue_v1.yaml):
// google-gax over gRPC, or over its REST fallback.

const fs = require('fs');
const path = require('path');
const gax = require('google-gax');
const {GoogleAuth, PassThroughClient} = require('google-auth-library');
const yaml = require('js-yaml');
const serializer = require('proto3-json-serializer');

const PROTOS = path.resolve(__dirname, '..', '..', 'protos');
// google-gax's own copy of the Google protos (build/src/index.js → build/protos).
const GOOGLE_PROTOS = path.join(path.dirname(require.resolve('google-gax')), '..', 'protos');
const OPERATIONS = 'google.longrunning.Operations.';

// What a generator compiles into protos.json: the published files and their imports.
function loadProtos() {
  const root = new gax.protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const dir of [PROTOS, GOOGLE_PROTOS]) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) {
        return candidate;
      }
    }
    return target;
  };
  root.loadSync(['opqueue/v1/jobs.proto', 'opqueue/v1/operation_metadata.proto']);
  root.resolveAll();
  return root.toJSON();
}

// The HTTP rules a generator copies from the service config for the Operations mixin.
function operationsHttpRules() {
  const config = yaml.load(fs.readFileSync(path.join(PROTOS, 'opqueue_v1.yaml'), 'utf8'));
  return config.http.rules.filter(rule => rule.selector.startsWith(OPERATIONS));
}

const RETRY = {
  retry_codes: {non_idempotent: [], idempotent: ['UNAVAILABLE']},
  retry_params: {
    default: {
      initial_retry_delay_millis: 100, retry_delay_multiplier: 1.3,
      max_retry_delay_millis: 10000, initial_rpc_timeout_millis: 60000,
      rpc_timeout_multiplier: 1, max_rpc_timeout_millis: 60000, total_timeout_millis: 60000,
    },
  },
};
const JOBS_METHODS = {
  RunJob: 'non_idempotent', BatchRunJobs: 'non_idempotent', ListJobs: 'idempotent',
  GetJob: 'idempotent',
};

// An opqueue client: `transport` is 'grpc' or 'rest'; `endpoint` is host:port of the gRPC
// server or of the HTTP API; `apiKey` is sent as x-goog-api-key when given.
function connect({transport, endpoint, apiKey}) {
  const fallback = transport === 'rest';
  const module = fallback ? gax.fallback : gax;
  const [servicePath, port] = endpoint.split(':');
  // No Google sign-in: a PassThroughClient never looks for credentials, so it contacts
  // nothing but opqueue; over REST it sends the API key. Its transport hands every HTTP
  // answer to google-gax, which turns an error envelope into a GoogleError with the gRPC
  // code, as over gRPC (by default gaxios 7 rejects them first as a GaxiosError whose `code`
  // is the HTTP status: googleapis/gax-nodejs#1803).
  const authClient = new PassThroughClient({transporterOptions: {
    validateStatus: () => true,
    headers: fallback && apiKey ? {'x-goog-api-key': apiKey} : {},
  }});
  const auth = new GoogleAuth({authClient});
  const opts = {servicePath, port: Number(port), fallback, protocol: 'http', auth};
  const headers = {};
  if (!fallback) {
    opts.sslCreds = gax.grpc.credentials.createInsecure();
    if (apiKey) {
      headers['x-goog-api-key'] = apiKey;
    }
  }
  const grpcClient = new module.GrpcClient(opts);
  const json = loadProtos();
  const protos = grpcClient.loadProtoJSON(json);
  const root = gax.protobuf.Root.fromJSON(json);

  const lroOptions = {auth: grpcClient.auth, grpc: fallback ? undefined : grpcClient.grpc};
  if (fallback) {
    lroOptions.protoJson = protos;
    lroOptions.httpRules = operationsHttpRules();
  }
  const operations = module.lro(lroOptions).operationsClient(opts);

  const value = root.lookupType('google.protobuf.Value');
  const metadata = root.lookupType('opqueue.v1.OperationMetadata');
  const runJobResult = new module.LongrunningDescriptor(
    operations, value.decode.bind(value), metadata.decode.bind(metadata));
  const config = {interfaces: {'opqueue.v1.Jobs': {...RETRY, methods: Object.fromEntries(
    Object.entries(JOBS_METHODS).map(([name, codes]) =>
      [name, {retry_codes_name: codes, retry_params_name: 'default'}]))}}};
  const defaults = grpcClient.constructSettings('opqueue.v1.Jobs', config, {}, {});
  const stub = grpcClient.createStub(
    fallback ? protos.lookupService('opqueue.v1.Jobs') : protos.opqueue.v1.Jobs, opts);
  const call = (name, descriptor) => module.createApiCall(
    stub.then(jobs => (...args) => jobs[name](...args)), defaults[name], descriptor,
    fallback);
  const otherArgs = {otherArgs: {headers}};
  const runJob = call('runJob', runJobResult);
  const operationCall = fn => (request, options = {}) => fn(request, {...otherArgs, ...options});

  return {
    root,
    operations: {
      getOperation: operationCall(operations.getOperation.bind(operations)),
      listOperations: operationCall(operations.listOperations.bind(operations)),
      cancelOperation: operationCall(operations.cancelOperation.bind(operations)),
      deleteOperation: operationCall(operations.deleteOperation.bind(operations)),
    },
    // RunJob: resolves to [operation] whose promise() resolves to [value, metadata].
    runJob: request => runJob(request, otherArgs),
    // The long-running operation `name` as RunJob would have handed it out.
    async checkRunJobProgress(name) {
      const [operation] = await operations.getOperation({name}, otherArgs);
      return new module.Operation(operation, runJobResult,
        module.createDefaultBackoffSettings());
    },
    // A protobuf message (Value, metadata, an error detail) as plain JSON.
    toJson: message => serializer.toProto3JSON(message),
    // The messages packed in a google.rpc.Status's details, decoded by their own types.
    unpack: details => details.map(any => {
      const type = root.lookupType(any.type_url.split('/').pop());
      return {type: type.fullName.slice(1), ...serializer.toProto3JSON(type.decode(any.value))};
    }),
    close() {
      operations.close();
      stub.then(jobs => jobs.close());
    },
  };
}

module.exports = {connect};
