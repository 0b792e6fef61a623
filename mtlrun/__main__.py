from mtlrun.cli import main

main()
