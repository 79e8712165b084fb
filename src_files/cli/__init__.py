"""The command line of the scripts.

flags    every flag of every script, grouped (data, model, training, evaluation, output, speed last)
resolve  the parsed flags -> frozen settings (src_files/settings.py): --demo, --resume, recipe, task
run      run_main: log lines on stdout, every user error as one line on stderr
"""
