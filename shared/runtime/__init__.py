"""The local runtime: turns ``serverless.yaml`` into live HTTP, Kafka, object-storage and
schedule triggers, with the delivery guarantees that the platforms' subscriptions lack."""
