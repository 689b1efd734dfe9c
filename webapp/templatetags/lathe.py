from django import template

register = template.Library()


@register.filter
def dict_get(mapping, key):
    """`{{ mapping|dict_get:key }}` for keys that are variables."""
    if isinstance(mapping, dict):
        return mapping.get(key, [])
    return []


@register.filter
def percent(value, digits: int = 0) -> str:
    try:
        return f"{float(value) * 100:.{int(digits)}f}%"
    except (TypeError, ValueError):
        return ""


@register.filter
def rule_label(rule: str) -> str:
    from datasets_app.core.cleaning.rules import RULE_LABELS

    return RULE_LABELS.get(rule, rule)
