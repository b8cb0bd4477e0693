"""Feeds: where a dashboard's files come from, the rules their settings obey, their state.

The face other packages use: the feed service (``check_feed``, ``list_feeds``,
``create_feed``, ``update_feed``, ``feed_of``), cron checks, the imap options and the state
tables (``feeds.models``); and the sources the scheduler (``worker/scheduler.py``) dispatches
to: folder (``feeds.folder``, ``feeds.folder_runs``), URL (``feeds.url``) and mail
(``feeds.mail`` over ``feeds.imap``), with what it records per feed (``feeds.state``).
"""
