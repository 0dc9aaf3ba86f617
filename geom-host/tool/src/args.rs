//! BSD getopt for the tool's own verbs (`disk attach -t malloc -s 64m`, `nbd export -r`):
//! options first, each letter once, a valued letter takes the rest of its word or the next
//! word; the first word that is not an option (or `--`) ends them.

/// The options given, in order, and the remaining arguments.
pub struct Parsed {
    /// `(letter, value)` for each option given.
    pub opts: Vec<(char, Option<String>)>,
    /// The words after the options.
    pub args: Vec<String>,
}

impl Parsed {
    /// Whether flag `c` was given.
    pub fn flag(&self, c: char) -> bool {
        self.opts.iter().any(|(o, _)| *o == c)
    }

    /// The value of option `c`, if given.
    pub fn value(&self, c: char) -> Option<&str> {
        self.opts.iter().find(|(o, _)| *o == c).and_then(|(_, v)| v.as_deref())
    }
}

/// Parse `argv` against `spec` (getopt's optstring: letters, `:` after those that take a
/// value).
pub fn getopt(argv: &[String], spec: &str) -> Result<Parsed, String> {
    let mut opts: Vec<(char, Option<String>)> = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let a = &argv[i];
        if a == "--" {
            i += 1;
            break;
        }
        let Some(letters) = a.strip_prefix('-').filter(|l| !l.is_empty()) else { break };
        for (at, c) in letters.char_indices() {
            let Some(pos) = spec.find(c).filter(|_| c != ':') else {
                return Err(format!("Invalid option -- '{c}'."));
            };
            if opts.iter().any(|(o, _)| *o == c) {
                return Err(format!("Option '{c}' specified twice."));
            }
            if !spec[pos + 1..].starts_with(':') {
                opts.push((c, None));
                continue;
            }
            let tail = &letters[at + c.len_utf8()..];
            let value = if !tail.is_empty() {
                tail.to_owned()
            } else {
                i += 1;
                argv.get(i).cloned().ok_or_else(|| format!("Option requires an argument -- '{c}'."))?
            };
            opts.push((c, Some(value)));
            break;
        }
        i += 1;
    }
    Ok(Parsed { opts, args: argv[i.min(argv.len())..].to_vec() })
}

#[cfg(test)]
mod tests {
    use super::getopt;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_then_arguments() {
        let p = getopt(&words("-t malloc -s64m -r name extra"), "t:s:S:u:r").unwrap();
        assert_eq!(p.value('t'), Some("malloc"));
        assert_eq!(p.value('s'), Some("64m"));
        assert!(p.flag('r'));
        assert_eq!(p.args, words("name extra"));
        assert!(getopt(&words("-x"), "t:").is_err());
        assert!(getopt(&words("-t"), "t:").is_err());
        assert!(getopt(&words("-r -r"), "r").is_err());
        assert_eq!(getopt(&words("-- -r"), "r").unwrap().args, words("-r"));
    }
}
