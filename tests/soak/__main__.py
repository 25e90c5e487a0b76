"""``python -m tests.soak [--jobs N] [--broker redis|amqp] [--state redis|cluster]``
(``make soak [BROKER=amqp] [STATE=cluster]`` runs 10,000 jobs).

Exit status 1 when a check fails; 2 when ``--broker amqp`` finds no RabbitMQ or the options do not
go together (the reason is printed).
"""

from __future__ import annotations

import argparse
import sys

from tests.soak.broker import KINDS, REDIS, BrokerMissing
from tests.soak.chaos import run_soak
from tests.soak.faults import FAULT_RATE
from tests.soak.state import KINDS as STATES
from tests.soak.state import REDIS as STATE_REDIS


def main() -> int:
    parser = argparse.ArgumentParser(description="Chaos soak: jobs through real workers, a SIGKILL and a Redis restart")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=3, help="prefork children per worker")
    parser.add_argument("--fault-rate", type=float, default=FAULT_RATE)
    parser.add_argument("--rate", type=float, default=25.0, help="jobs enqueued per second")
    parser.add_argument("--timeout", type=float, default=840, help="seconds until unfinished jobs count as lost")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--broker",
        choices=KINDS,
        default=REDIS,
        help="redis: jobs queue in the soak's Redis; amqp: in a fresh vhost of the RabbitMQ on "
        "127.0.0.1:5672 (Redis keeps the state)",
    )
    parser.add_argument(
        "--state",
        choices=STATES,
        default=STATE_REDIS,
        help="redis: one redis-server; cluster: a three-master Redis Cluster (needs --broker amqp), "
        "one master restarted mid-run",
    )
    args = parser.parse_args()
    try:
        report = run_soak(
            args.jobs,
            workers=args.workers,
            concurrency=args.concurrency,
            fault_rate=args.fault_rate,
            rate=args.rate,
            timeout=args.timeout,
            seed=args.seed,
            log=lambda line: print(line, flush=True),
            broker=args.broker,
            state=args.state,
        )
    except BrokerMissing as e:
        print(f"chaos soak: cannot run on {args.broker}: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"chaos soak: {e}", file=sys.stderr)
        return 2
    print(report.render(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
