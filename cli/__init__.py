"""The `codlite` command-line application (click); the library itself never imports click."""
