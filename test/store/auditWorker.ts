// A second process-like writer for the audit chain test: appends `count` entries to the store
// at `path` as fast as it can, on its own connection, then reports how many it wrote.
import { parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../../src/clock.ts';
import { Store } from '../../src/store/index.ts';

const { path, count, name } = workerData as { path: string; count: number; name: string };
const store = Store.open(path, { clock: systemClock });
try {
  for (let i = 0; i < count; i++) {
    store.audit.append({ actorType: 'system', actorId: name, tenantId: null, action: 'test.append', resource: `n:${i}`, outcome: 'success', origin: 'worker' });
  }
  parentPort?.postMessage({ wrote: count });
} finally {
  store.close();
}
