"""`fleetserve bench`: end-to-end scenarios through the real broker, against baselines."""
