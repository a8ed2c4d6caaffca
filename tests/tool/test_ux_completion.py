#!/usr/bin/python3
# tool-ux-completion: the bash completion offers the commands, every option
# of each command (as its --help lists them), formats, cache modes, output
# and progress forms, and files; with and without the bash-completion
# package loaded.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rechaintest as rt  # noqa: E402
from rechaintest import ToolTestCase, main  # noqa: E402

COMPLETION = os.environ.get('RECHAIN_BASH_COMPLETION', '')
BASH_COMPLETION = '/usr/share/bash-completion/bash_completion'

# Splits the line into COMP_WORDS as readline does (COMP_WORDBREAKS has
# "=" and ":"), runs _rechain and prints COMPREPLY, one per line.
DRIVER = r'''
%(preamble)s
source "$RECHAIN_COMPLETION"
line=$1
COMP_LINE=$line
COMP_POINT=${#line}
COMP_WORDS=()
word=""
for ((i = 0; i < ${#line}; i++)); do
    c=${line:i:1}
    if [[ $c == " " ]]; then
        [[ -n $word ]] && COMP_WORDS+=("$word")
        word=""
    elif [[ $c == "=" ]]; then
        [[ -n $word ]] && COMP_WORDS+=("$word")
        COMP_WORDS+=("=")
        word=""
    else
        word+=$c
    fi
done
COMP_WORDS+=("$word")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMPREPLY=()
_rechain rechain "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%%s\n' "${COMPREPLY[@]}"
'''


class CompletionTest(ToolTestCase):

    full = True   # with the bash-completion package

    def setUp(self):
        super().setUp()
        if not COMPLETION or not os.path.exists(COMPLETION):
            self.skipTest('completion script not found (RECHAIN_BASH_COMPLETION=%r)' % COMPLETION)
        if not shutil.which('bash'):
            self.skipTest('bash not installed')
        if self.full and not os.path.exists(BASH_COMPLETION):
            self.skipTest('bash-completion not installed')
        for name in ('disk.qcow2', 'disk2.qcow2', 'notes.txt'):
            open(self.path(name), 'w').close()
        os.mkdir(self.path('images'))

    def complete(self, line):
        preamble = ('source %s' % BASH_COMPLETION) if self.full else ''
        p = subprocess.run(['bash', '--norc', '--noprofile', '-c', DRIVER % {'preamble': preamble},
                            'driver', line],
                           cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=dict(os.environ, RECHAIN_COMPLETION=COMPLETION), text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, '', 'completion printed errors')
        return [w for w in p.stdout.split('\n') if w]

    def assert_offers(self, line, expected, exact=False):
        got = self.complete(line)
        if exact:
            self.assertEqual(sorted(got), sorted(expected), 'completing %r' % line)
        else:
            missing = set(expected) - set(got)
            self.assertFalse(missing, 'completing %r: %s missing from %s' % (line, missing, got))
        return got

    def test_commands(self):
        self.assert_offers('rechain ', ['info', 'map', 'rebase', 'help'], exact=True)
        self.assert_offers('rechain re', ['rebase'], exact=True)
        self.assert_offers('rechain --', ['--help', '--version'])
        self.assert_offers('rechain help ', ['info', 'map', 'rebase'], exact=True)

    def test_every_option_offered(self):
        """What `rechain CMD --help` lists, completion offers."""
        for cmd in ('info', 'map', 'rebase'):
            r = self.rechain(cmd, '--help', expect=0)
            opts = re.findall(r'^\s+(?:(-\w), )?(--[\w-]+)', r.out, re.M)
            self.assertTrue(opts, r.describe())
            got = [w.rstrip('=') for w in self.complete('rechain %s --' % cmd)]
            got_short = self.complete('rechain %s -' % cmd)
            for short, long in opts:
                with self.subTest(command=cmd, option=long):
                    self.assertIn(long, got)
                    if short:
                        self.assertIn(short, got_short)

    def test_option_values(self):
        self.assert_offers('rechain info -f ', ['qcow2', 'raw'], exact=True)
        self.assert_offers('rechain rebase -F q', ['qcow2'], exact=True)
        self.assert_offers('rechain rebase --format=', ['qcow2', 'raw'], exact=True)
        self.assert_offers('rechain rebase --backing-format=r', ['raw'], exact=True)
        self.assert_offers('rechain rebase -t ',
                           ['writeback', 'writethrough', 'none', 'directsync', 'unsafe'], exact=True)
        self.assert_offers('rechain rebase --source-cache=n', ['none'], exact=True)
        self.assert_offers('rechain map --output=', ['human', 'json'], exact=True)
        self.assert_offers('rechain info --output j', ['json'], exact=True)
        self.assert_offers('rechain rebase --progress=', ['auto', 'bar', 'plain', 'json'],
                           exact=True)
        self.assert_offers('rechain map --progress=j', ['json'], exact=True)

    def test_files(self):
        self.assert_offers('rechain info d', ['disk.qcow2', 'disk2.qcow2'], exact=True)
        got = self.assert_offers('rechain rebase -b ', ['disk.qcow2', 'images'])
        self.assertIn('notes.txt', got)
        # -p takes no value: after it comes an IMAGE
        self.assert_offers('rechain rebase -p d', ['disk.qcow2', 'disk2.qcow2'], exact=True)
        self.assert_offers('rechain map --progress d', ['disk.qcow2', 'disk2.qcow2'], exact=True)
        self.assert_offers('rechain rebase -u -b disk.qcow2 -F qcow2 disk2', ['disk2.qcow2'],
                           exact=True)


class FallbackCompletionTest(CompletionTest):
    """The same without the bash-completion package's helpers."""
    full = False


if __name__ == '__main__':
    main()
