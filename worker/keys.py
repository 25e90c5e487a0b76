"""Redis keys written by the worker layer (type and TTL alongside). Library keys: resilience/keys.py.

Hash tags keep each script's keys in one Redis Cluster slot: a job's own keys share ``{job_id}``,
the outbox's ``{outbox}``. On a cluster the steps that touch both (claim, finish, record) run as
two commands; on a single Redis as one script.
"""

JOB_RESULT = "llmorch:job:{{{job_id}}}:result"  # STRING JSON result dict; TTL = result_expires
JOB_LEASE = "llmorch:job:{{{job_id}}}:lease"  # STRING owner token; TTL = hard time limit + 5 s
JOB_STREAM = "llmorch:job:{{{job_id}}}:stream"  # STREAM chunks then a final entry; TTL 1 h
IDEMPOTENCY = "llmorch:idem:{key}"  # STRING job id; TTL = result_expires
ROLLUP = "llmorch:rollup:{day}"  # STRING JSON rows of one UTC day; TTL 400 days
STREAM_TTL_SECONDS = 3600
OUTBOX_OPEN = "llmorch:{outbox}:open"  # ZSET job id -> time sent; member removed with the result
OUTBOX_MSG = "llmorch:{outbox}:msg"  # HASH job id -> JSON {task, payload, queue, summary}
OUTBOX_SUSPECT = "llmorch:{outbox}:suspect"  # ZSET job id -> when a sweep first found it nowhere
