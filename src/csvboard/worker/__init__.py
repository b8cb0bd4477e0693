"""The processes that do the work: ``worker`` (claims and executes queued runs, reaps lost
ones) and ``scheduler`` (one leader, ``leadership``, ticks and dispatches each feed to its
source in ``csvboard.feeds``). Nothing but the app and the CLI imports this package.
"""
