from grammar_ae.cli.main import main

main()
