-- Dead heads that block their key (store.EnqueueParams.HoldKeyWhenDead,
-- store.DeadHeadBlock). A dead job with hold_when_dead keeps its ordering
-- key's line blocked until it is requeued or purged: a claim takes a job of
-- the key only when no earlier job of it is live, nor dead and holding.
ALTER TABLE spool_jobs ADD COLUMN hold_when_dead INTEGER NOT NULL DEFAULT 0;
-- The claim's "is an earlier job of this key dead and holding?" is a probe
-- of this index, which holds only such jobs (none, in a healthy store).
CREATE INDEX spool_jobs_dead_holds ON spool_jobs (tenant, ordering_key, id)
    WHERE state = 'dead' AND hold_when_dead = 1;

-- What an ordered subscription's dead-lettered delivery does to its key:
-- 'skip' (the next event runs) or 'block' (the key waits for an operator).
ALTER TABLE spool_subscriptions ADD COLUMN on_dead_head TEXT NOT NULL DEFAULT 'skip';
