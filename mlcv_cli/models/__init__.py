"""The model types mlcv trains: the registry (registry.py) of the families declared here (knn.py,
linear.py, ...), the contract each type fulfils (base.py), and the model file that stores one
fitted model (modelfile.py). Nothing outside this package lists model types."""
