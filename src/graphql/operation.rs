//! The operation a request runs, and its variables, checked before it runs.
//!
//! async-graphql reports an operation it cannot choose only after
//! validation, in words of its own, and never checks variable values
//! against their definitions: a value it can test where the variable is
//! used as an argument fails validation, but a required variable left out
//! (or sent as `null`) reaches execution, which answers the field with an
//! error and the rest of the data. Both are request errors in GraphQL's
//! terms (`GetOperation()`, `CoerceVariableValues()`): nothing runs.

use async_graphql::{
    Name, Value, Variables,
    parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition},
};

/// The operation `document` runs for `operation_name`, as async-graphql
/// chooses it, or why there is none.
pub fn choose_operation<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Result<&'a OperationDefinition, String> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), None) => Ok(&operation.node),
        (DocumentOperations::Multiple(operations), Some(name)) => operations
            .get(&Name::new(name))
            .map(|operation| &operation.node)
            .ok_or_else(|| unknown(name)),
        (DocumentOperations::Single(_), Some(name)) => Err(unknown(name)),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations
            .values()
            .next()
            .map(|operation| &operation.node)
            .ok_or_else(|| "the document has no operation".to_owned()),
        (DocumentOperations::Multiple(_), None) => Err(
            "the document has several operations: name the one to run in `operationName`".into(),
        ),
    }
}

fn unknown(name: &str) -> String {
    let name: String = name.chars().take(100).collect();
    format!("the document has no operation named \"{name}\"")
}

/// Whether `variables` give every non-null variable of `operation` a
/// value: a missing one without a default, or a `null`, is refused, as
/// GraphQL's `CoerceVariableValues()` refuses it.
pub fn check_required_variables(
    operation: &OperationDefinition,
    variables: &Variables,
) -> Result<(), String> {
    for definition in &operation.variable_definitions {
        let definition = &definition.node;
        let ty = &definition.var_type.node;
        if ty.nullable {
            continue;
        }
        let name = &definition.name.node;
        match variables.get(name) {
            None if definition.default_value.is_none() => {
                return Err(format!(
                    "Variable \"${name}\" of required type \"{ty}\" was not provided."
                ));
            }
            Some(Value::Null) => {
                return Err(format!(
                    "Variable \"${name}\" of non-null type \"{ty}\" must not be null."
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(query: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(query).expect("parses")
    }

    #[test]
    fn operations_are_chosen_as_async_graphql_chooses_them() {
        let single = parse("{ me { id } }");
        assert!(choose_operation(&single, None).is_ok());
        assert!(
            choose_operation(&single, Some("Me"))
                .unwrap_err()
                .contains("no operation named \"Me\"")
        );
        let one = parse("query Me { me { id } }");
        assert!(choose_operation(&one, None).is_ok());
        assert!(choose_operation(&one, Some("Me")).is_ok());
        assert!(choose_operation(&one, Some("Other")).is_err());
        let two = parse("query A { me { id } } query B { me { name } }");
        assert!(
            choose_operation(&two, None)
                .unwrap_err()
                .contains("operationName")
        );
        assert!(choose_operation(&two, Some("B")).is_ok());
        let long = "x".repeat(500);
        assert!(choose_operation(&two, Some(&long)).unwrap_err().len() < 200);
    }

    fn check(query: &str, variables: serde_json::Value) -> Result<(), String> {
        let document = parse(query);
        let operation = choose_operation(&document, None).unwrap();
        check_required_variables(operation, &Variables::from_json(variables))
    }

    #[test]
    fn required_variables_need_a_value() {
        let query = "query Q($id: ID!, $n: Int, $m: Int! = 3) { song(id: $id) { name } }";
        assert!(check(query, json!({"id": "1"})).is_ok());
        assert!(check(query, json!({"id": "1", "n": null, "m": 4})).is_ok());
        assert_eq!(
            check(query, json!({})).unwrap_err(),
            "Variable \"$id\" of required type \"ID!\" was not provided."
        );
        assert_eq!(
            check(query, json!({"id": null})).unwrap_err(),
            "Variable \"$id\" of non-null type \"ID!\" must not be null."
        );
        // A default stands in for a missing value, not for a null.
        assert!(check(query, json!({"id": "1", "m": null})).is_err());
        assert!(
            check(
                "query Q($ids: [ID!]!) { __typename }",
                json!({"ids": [null]})
            )
            .is_ok(),
            "the value's own shape is validation's to check"
        );
    }
}
