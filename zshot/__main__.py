from zshot.cli import main

raise SystemExit(main())
