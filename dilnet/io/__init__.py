"""Reading and writing: model configs as JSON-able dicts (`config`), summary tables
(`summary`)."""
