"""The jobs mlcv does (train, resume, evaluate, predict, cross-validate): they return results and never print."""
