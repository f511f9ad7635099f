"""Models in production: the prediction log, feedback labels, drift, alerts and retraining."""
