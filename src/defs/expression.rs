//! Arithmetic over metric names, for derived metrics (`spend / mqls`, `(a + b) * 100`).
//!
//! A tiny recursive-descent parser: numbers, metric names, `+ - * /`, unary minus and
//! parentheses. Evaluation is per period and dimension value; a missing part or a division by
//! zero gives no value rather than zero or infinity.

use std::collections::HashMap;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    /// A constant.
    Number(f64),
    /// Another metric's value.
    Metric(String),
    /// `-x`.
    Negate(Box<Expression>),
    /// A binary operation: one of `+ - * /`.
    Binary(Box<Expression>, char, Box<Expression>),
}

impl Expression {
    /// Parses `text`, or says where it stops making sense.
    pub fn parse(text: &str) -> Result<Self, String> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            position: 0,
        };
        let expression = parser.sum()?;
        if parser.position != parser.tokens.len() {
            return Err(format!(
                "unexpected `{}` in `{text}`",
                parser.tokens[parser.position]
            ));
        }
        Ok(expression)
    }

    /// Returns the metric names used, in order of first use.
    pub fn metrics(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.collect(&mut names);
        names
    }

    fn collect(&self, names: &mut Vec<String>) {
        match self {
            Self::Number(_) => {}
            Self::Metric(name) => {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            Self::Negate(inner) => inner.collect(names),
            Self::Binary(left, _, right) => {
                left.collect(names);
                right.collect(names);
            }
        }
    }

    /// Evaluates with the given metric values.
    pub fn evaluate(&self, values: &HashMap<String, Option<f64>>) -> Option<f64> {
        match self {
            Self::Number(value) => Some(*value),
            Self::Metric(name) => values.get(name).copied().flatten(),
            Self::Negate(inner) => inner.evaluate(values).map(|value| -value),
            Self::Binary(left, operator, right) => {
                let (left, right) = (left.evaluate(values), right.evaluate(values));
                match operator {
                    // A sum of parts: a missing side counts as 0 when the other has a value.
                    '+' | '-' => {
                        let (left, right) = match (left, right) {
                            (None, None) => return None,
                            (left, right) => (left.unwrap_or(0.0), right.unwrap_or(0.0)),
                        };
                        Some(if *operator == '+' {
                            left + right
                        } else {
                            left - right
                        })
                    }
                    '*' => Some(left? * right?),
                    _ => {
                        let (left, right) = (left?, right?);
                        (right != 0.0).then(|| left / right)
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Name(String),
    Symbol(char),
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(value) => write!(f, "{value}"),
            Self::Name(name) => f.write_str(name),
            Self::Symbol(symbol) => write!(f, "{symbol}"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if c.is_whitespace() {
            index += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = index;
            while index < chars.len() && (chars[index].is_ascii_digit() || chars[index] == '.') {
                index += 1;
            }
            let literal: String = chars[start..index].iter().collect();
            let value = literal
                .parse()
                .map_err(|_| format!("`{literal}` is not a number"))?;
            tokens.push(Token::Number(value));
        } else if c.is_ascii_lowercase() || c == '_' {
            let start = index;
            while index < chars.len()
                && (chars[index].is_ascii_alphanumeric() || chars[index] == '_')
            {
                index += 1;
            }
            tokens.push(Token::Name(chars[start..index].iter().collect()));
        } else if "+-*/()".contains(c) {
            tokens.push(Token::Symbol(c));
            index += 1;
        } else {
            return Err(format!(
                "`{c}` is not allowed; use metric names, numbers, + - * / and parentheses"
            ));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn sum(&mut self) -> Result<Expression, String> {
        let mut left = self.product()?;
        while let Some(Token::Symbol(operator @ ('+' | '-'))) = self.peek().cloned() {
            self.position += 1;
            let right = self.product()?;
            left = Expression::Binary(Box::new(left), operator, Box::new(right));
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Expression, String> {
        let mut left = self.unary()?;
        while let Some(Token::Symbol(operator @ ('*' | '/'))) = self.peek().cloned() {
            self.position += 1;
            let right = self.unary()?;
            left = Expression::Binary(Box::new(left), operator, Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expression, String> {
        if let Some(Token::Symbol('-')) = self.peek() {
            self.position += 1;
            return Ok(Expression::Negate(Box::new(self.unary()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expression, String> {
        let token = self.peek().cloned();
        self.position += 1;
        match token {
            Some(Token::Number(value)) => Ok(Expression::Number(value)),
            Some(Token::Name(name)) => Ok(Expression::Metric(name)),
            Some(Token::Symbol('(')) => {
                let inner = self.sum()?;
                match self.peek() {
                    Some(Token::Symbol(')')) => {
                        self.position += 1;
                        Ok(inner)
                    }
                    _ => Err("missing `)`".to_string()),
                }
            }
            Some(other) => Err(format!("unexpected `{other}`")),
            None => Err("the expression ends too early".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, Option<f64>)]) -> HashMap<String, Option<f64>> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn precedence_and_parentheses() {
        let expression = Expression::parse("spend / mqls * 2 - (a + 1)").expect("parses");
        assert_eq!(expression.metrics(), vec!["spend", "mqls", "a"]);
        let v = values(&[
            ("spend", Some(100.0)),
            ("mqls", Some(4.0)),
            ("a", Some(9.0)),
        ]);
        assert_eq!(expression.evaluate(&v), Some(40.0));
        assert_eq!(
            Expression::parse("-a * 2").expect("p").evaluate(&v),
            Some(-18.0)
        );
    }

    #[test]
    fn missing_values_and_zero_denominators_give_none() {
        let expression = Expression::parse("spend / mqls").expect("parses");
        assert_eq!(
            expression.evaluate(&values(&[("spend", Some(1.0)), ("mqls", Some(0.0))])),
            None
        );
        assert_eq!(
            expression.evaluate(&values(&[("spend", None), ("mqls", Some(2.0))])),
            None
        );
    }

    #[test]
    fn a_missing_part_counts_as_zero_only_in_a_sum() {
        let sum = Expression::parse("a + b - c").expect("parses");
        assert_eq!(
            sum.evaluate(&values(&[("a", Some(5.0)), ("b", None), ("c", Some(1.0))])),
            Some(4.0)
        );
        assert_eq!(
            sum.evaluate(&values(&[("a", None), ("b", None), ("c", None)])),
            None
        );
        let product = Expression::parse("(a + b) * c").expect("parses");
        assert_eq!(
            product.evaluate(&values(&[("a", Some(5.0)), ("b", Some(1.0)), ("c", None)])),
            None
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(Expression::parse("spend /")
            .expect_err("e")
            .contains("ends too early"));
        assert!(Expression::parse("(spend")
            .expect_err("e")
            .contains("missing `)`"));
        assert!(Expression::parse("spend; drop")
            .expect_err("e")
            .contains("`;` is not allowed"));
        assert!(Expression::parse("a b")
            .expect_err("e")
            .contains("unexpected `b`"));
    }
}
