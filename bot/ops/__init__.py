"""Running the bot for real, independent of Discord; the composition root wires these in.

metrics          prometheus-client metrics in a registry of our own, behind a typed API (a no-op when off);
                 metered: the door wrapper through which the pipeline counts each request once
health           the aiohttp server for /metrics, /healthz and /readyz on METRICS_PORT; Discord 429s counted
logs             text or JSON lines, a request id per request, secrets redacted from the final line
usage            the /usage numbers from the ledger and audit tables; usage_render draws the table, CSV and chart
report           `python -m bot report`
budget           alerts when a day's spend reaches 80 % and 100 % of a cap
privacy          a member's export and forget, and the prompt retention pass, over every table's owner
access           where the bot may be used (pure rules); server_settings stores them per server
periodic         the bot's housekeeping tasks
"""
