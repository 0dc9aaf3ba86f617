//! The tool's own verbs (`disk attach -t malloc -s 64m`, `nbd export -r`) parse their
//! options with the getopt the class verbs use ([`geom_host::command::getopt`]), from a
//! getopt(3)-style option string.

use geom_host::command::getopt as bsd_getopt;

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
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    let letter = |c: char| spec.find(c).filter(|_| c != ':').map(|at| spec[at + 1..].starts_with(':'));
    let (opts, args) = bsd_getopt(&words, letter).map_err(|e| e.0)?;
    Ok(Parsed { opts, args: args.into_iter().map(str::to_owned).collect() })
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
        assert!(getopt(&words("-:"), "t:").is_err());
        assert!(getopt(&words("-t"), "t:").is_err());
        assert!(getopt(&words("-r -r"), "r").is_err());
        assert_eq!(getopt(&words("-- -r"), "r").unwrap().args, words("-r"));
    }
}
