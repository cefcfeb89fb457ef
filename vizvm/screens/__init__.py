"""vizvm's screens: the machine screen and its dialogs."""
