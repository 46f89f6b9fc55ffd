-- The dashboard's reads at a million jobs (issue 15). A queue's finished
-- jobs in one state, in ID order: the dashboard lists them newest first
-- with a cursor, counts them up to a cap (CountJobs, and Stats, which
-- stops counting a finished state at store.StatsCountCap), and finds the
-- queues that have any by a skip-scan. A job enters the index once, when
-- it finishes, and leaves it when retention deletes it, so claims and
-- every other update of a live job never touch it. The predicate is an OR
-- of equalities, not an IN list: SQLite proves that a query's
-- "state = 'dead'" implies an OR of which it is a term, and nothing
-- implies an IN list but the same list.
CREATE INDEX spool_jobs_queue_finished ON spool_jobs (queue, state, id)
    WHERE state = 'completed' OR state = 'cancelled' OR state = 'dead';
