from verifycli.cli import main

main()
