import type { Db } from '../../../../db/src/index.ts';
import type { ChangeFeed } from './changeFeed.ts';
import type { EventLog } from './events.ts';

export interface ServiceDeps {
  db: Db;
  feed: ChangeFeed;
  events: EventLog;
}
