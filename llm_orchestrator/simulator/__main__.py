"""``python -m llm_orchestrator.simulator --port 8900``."""

import argparse

from llm_orchestrator.simulator.server import run

parser = argparse.ArgumentParser(description="Run the provider simulator")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8900)
args = parser.parse_args()
run(args.host, args.port)
