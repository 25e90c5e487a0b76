"""Redis keys written by the worker layer (type and TTL alongside). Library keys: resilience/keys.py."""

JOB_RESULT = "llmorch:job:{job_id}:result"   # STRING JSON result dict; TTL = result_expires
JOB_LEASE = "llmorch:job:{job_id}:lease"     # STRING owner token; TTL = hard time limit + 30 s
JOB_STREAM = "llmorch:job:{job_id}:stream"   # STREAM chunks then a final entry; TTL 1 h
IDEMPOTENCY = "llmorch:idem:{key}"           # STRING job id; TTL = result_expires
ROLLUP = "llmorch:rollup:{day}"              # STRING JSON rows of one UTC day; TTL 400 days
STREAM_TTL_SECONDS = 3600
