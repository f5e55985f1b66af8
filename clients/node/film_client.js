#!/usr/bin/env node
// A reelfarm client in Node.js: loads the .proto files at run time (@grpc/proto-loader),
// creates a two-scene film on the tiny model and streams its frames as PNG.
//
//   node film_client.js HOST:PORT [TOKEN]
//
// Prints one JSON object per line: {"name": ...}, then one per frame
// {"scene_id", "frame_index", "film_frame_index", "bytes", "sha256"}, then {"frames": N}.
// Exits 1 with the gRPC status on stderr if a call fails.
'use strict';

const crypto = require('crypto');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTOS = path.resolve(__dirname, '..', '..', 'protos');
const DEADLINE_MS = 30000;

function loadService() {
  const definition = protoLoader.loadSync(path.join(PROTOS, 'reelfarm/v1/film_service.proto'), {
    includeDirs: [PROTOS],
    keepCase: true, // field names as in the .proto (scene_id, not sceneId)
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).reelfarm.v1.FilmService;
}

function film() {
  return {
    title: 'node client', fps: 16, width: 32, height: 32, model: 'tiny', steps: 4,
    scenes: [
      { id: 'n1', prompt: 'a lighthouse in a storm', frames: 9, seed: 1 },
      { id: 'n2', prompt: 'a calm harbour at dawn', frames: 5, seed: 2 },
    ],
  };
}

function fail(what, err) {
  process.stderr.write(`${what} failed: ${grpc.status[err.code]}: ${err.details}\n`);
  process.exit(1);
}

// Joins the chunks of one frame (a frame over 1 MiB arrives in several messages).
function streamFrames(client, name, metadata) {
  const call = client.StreamFrames({ name, encoding: 'FRAME_ENCODING_PNG' }, metadata);
  let parts = [];
  let have = 0;
  let count = 0;
  call.on('data', (msg) => {
    parts.push(msg.data);
    have += msg.data.length;
    if (have < msg.size_bytes) return;
    const data = Buffer.concat(parts);
    parts = [];
    have = 0;
    count += 1;
    console.log(JSON.stringify({
      scene_id: msg.scene_id, frame_index: msg.frame_index,
      film_frame_index: msg.film_frame_index, bytes: data.length,
      sha256: crypto.createHash('sha256').update(data).digest('hex'),
    }));
  });
  call.on('error', (err) => fail('StreamFrames', err));
  call.on('end', () => {
    console.log(JSON.stringify({ frames: count }));
    client.close();
  });
}

function main() {
  const [target, token] = process.argv.slice(2);
  if (!target) {
    process.stderr.write('usage: node film_client.js HOST:PORT [TOKEN]\n');
    process.exit(2);
  }
  const FilmService = loadService();
  const client = new FilmService(target, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  const request = { film: film(), request_id: crypto.randomUUID() };
  client.CreateFilm(request, metadata, { deadline: Date.now() + DEADLINE_MS }, (err, created) => {
    if (err) fail('CreateFilm', err);
    console.log(JSON.stringify({ name: created.name, state: created.state }));
    streamFrames(client, created.name, metadata);
  });
}

main();
