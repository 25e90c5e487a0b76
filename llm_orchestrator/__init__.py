"""llm-orchestrator: reliable, cheap LLM calls to OpenAI, Anthropic and Gemini.

Importing this package connects to nothing and reads no environment variables.
"""
