//! Jinja templates as Duffy configurations write them, rendered with minijinja.

use minijinja::{AutoEscape, Environment};

/// An environment that renders like Jinja2's defaults for text: no auto-escaping (whatever
/// a template's name), undefined variables render empty.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env
}
