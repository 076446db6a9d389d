"""LightningModule, callbacks and the train() job."""
