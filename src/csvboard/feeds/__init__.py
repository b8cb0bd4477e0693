"""Feeds: where a dashboard's files come from, the rules their settings obey, their state.

The face other packages use: the feed service (``check_feed``, ``list_feeds``,
``create_feed``, ``update_feed``, ``feed_of``), cron checks, the imap options and the state
tables (``feeds.models``).
"""
