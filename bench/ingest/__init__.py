"""Per-request log ingest: how many HAProxy log lines per second the real daemon absorbs with
zero loss, at what CPU cost, against a bare asyncio receiver that only counts datagrams.
`python -m bench.ingest`."""
