from devstack.stack.command import main

raise SystemExit(main())
