"""The shared sync core: model, store, engine, outbox, notifications, reminders, audit, privacy."""
