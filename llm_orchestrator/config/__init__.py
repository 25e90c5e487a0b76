"""Configuration loading and validation."""

from llm_orchestrator.config.manager import ConfigManager, OrchestratorConfig

__all__ = ["ConfigManager", "OrchestratorConfig"]
