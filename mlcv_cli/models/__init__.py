"""The model types mlcv trains, and the model file that stores one."""
