"""BroRL training: config, engines, learner and the loop (imports torch lazily)."""
