"""k-fold cross-validation: the plan, its jobs, the executors that run them, the journal, the refit."""
