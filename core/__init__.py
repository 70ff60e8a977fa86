"""The Operation domain shared by the API and the workers: settings, codes, states, store."""
