import sys

from .process import hangup

hangup.hold()  # before the imports below: a SIGHUP while starting must not end the process

from .cli import main  # noqa: E402

sys.exit(main())
