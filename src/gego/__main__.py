from gego.cli import main
import sys
sys.exit(main())
