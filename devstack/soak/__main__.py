from devstack.soak.command import main

raise SystemExit(main())
