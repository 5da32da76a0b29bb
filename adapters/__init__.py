"""Provider adapters: one folder per platform, all speaking the protocols in adapters.base."""
