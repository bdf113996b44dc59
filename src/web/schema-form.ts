/**
 * The metadata form of an envelope type, generated from the JSON Schema the
 * server publishes (GET /api/v1/envelope-types/{type}) with its FR/NL labels.
 * The server stays the only validator: the form does not block submission on
 * its own checks (besides values it cannot even encode, like "12,3,4" as an
 * amount), and each issue of a problem answer (`name` = JSON pointer such as
 * `/metadata/decisionDate`) is shown next to the field it names.
 *
 * Supported: strings (text, long text, dates), enums (select), integers and
 * numbers, amounts in euro cents (typed in euros), booleans, nested objects
 * (fieldsets) and arrays (one value per line, or repeatable groups).
 */
import type { EnvelopeTypeDescription, JsonSchema, Label } from './api.ts';
import { h, uid } from './dom.ts';
import { label, t } from './i18n.ts';

interface Node {
  element: HTMLElement;
  /** The value, or undefined when empty; pushes client-side problems into `errors`. */
  read(errors: Array<{ node: Node; message: string }>): unknown;
  /** The error slot for a path below this node (the node's own when it has no finer one). */
  slot(path: string[]): ErrorSlot;
}

export interface ErrorSlot {
  show(message: string): void;
  control: HTMLElement;
}

export interface MetadataForm {
  element: HTMLElement;
  read(): { value: Record<string, unknown>; ok: boolean };
  /** Shows an issue under the field named by a pointer relative to the metadata (`/decisionDate`). */
  showIssue(pointer: string, message: string): ErrorSlot;
  clearIssues(): void;
}

function enumValues(schema: JsonSchema): unknown[] | null {
  if (Array.isArray(schema.enum)) return schema.enum;
  if (Array.isArray(schema.anyOf) && schema.anyOf.every((s) => 'const' in s)) return schema.anyOf.map((s) => s.const);
  return null;
}

const isAmount = (schema: JsonSchema) => schema.type === 'integer' && /euro cents/i.test(schema.description ?? '');

/** "1 234,56" / "1234.56" → 123456 cents; null when not an amount. */
export function parseEuros(text: string): number | null {
  const cleaned = text.replace(/[\s\u00a0\u202f€]/g, '');
  const match = /^(\d+)(?:[.,](\d{1,2}))?$/.exec(cleaned);
  if (match === null) return null;
  return Number(match[1]) * 100 + Number((match[2] ?? '0').padEnd(2, '0'));
}

export function metadataForm(description: EnvelopeTypeDescription): MetadataForm {
  const fieldLabels = description.fieldLabels ?? {};
  const valueLabels = description.valueLabels ?? {};
  const errorElements: HTMLElement[] = [];
  const invalidControls: HTMLElement[] = [];

  function makeSlot(errorElement: HTMLElement, control: HTMLElement): ErrorSlot {
    return {
      control,
      show(message: string) {
        errorElement.hidden = false;
        errorElement.textContent = errorElement.textContent ? `${errorElement.textContent} ${message}` : message;
        control.setAttribute('aria-invalid', 'true');
        invalidControls.push(control);
      },
    };
  }

  function errorElement(): HTMLElement {
    const element = h('p', { class: 'field-error', id: uid('err'), hidden: true });
    errorElements.push(element);
    return element;
  }

  /** The label of a field: the server's FR/NL label for its pointer (array indices removed), else the schema title. */
  function labelOf(pointer: string, schema: JsonSchema, name: string): string {
    const generic = pointer.replace(/\/\d+(?=\/|$)/g, '');
    return label(fieldLabels[generic] as Label | undefined, schema.title ?? name);
  }

  function leaf(schema: JsonSchema, pointer: string, name: string, required: boolean): Node {
    const id = uid('m');
    const error = errorElement();
    const text = labelOf(pointer, schema, name);
    const labelElement = h('label', { for: id }, text, required ? h('span', { class: 'required' }, ` (${t('required')})`) : null);
    const describedBy = [error.id];
    let hint: HTMLElement | null = null;
    const values = enumValues(schema);
    let control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
    let read: (errors: Array<{ node: Node; message: string }>) => unknown;
    const common = { id, name: pointer, 'data-pointer': pointer, 'aria-required': required ? 'true' : null };

    if (values !== null) {
      const labels = valueLabels[pointer.replace(/\/\d+(?=\/|$)/g, '')] ?? {};
      control = h(
        'select',
        common,
        h('option', { value: '' }, t('chooseType')),
        values.map((v) => h('option', { value: String(v) }, label(labels[String(v)], String(v)))),
      );
      read = () => (control.value === '' ? undefined : values.find((v) => String(v) === control.value));
    } else if (schema.type === 'boolean') {
      control = h('input', { ...common, type: 'checkbox' });
      const checkbox = control;
      read = () => checkbox.checked;
    } else if (isAmount(schema)) {
      hint = h('small', { id: uid('hint'), class: 'hint' }, t('amountHint'));
      describedBy.push(hint.id);
      control = h('input', { ...common, type: 'text', inputmode: 'decimal', autocomplete: 'off' });
      read = (errors) => {
        if (control.value.trim() === '') return undefined;
        const cents = parseEuros(control.value);
        if (cents === null) errors.push({ node, message: t('notAnAmount') });
        return cents ?? undefined;
      };
    } else if (schema.type === 'integer' || schema.type === 'number') {
      control = h('input', {
        ...common,
        type: 'number',
        step: schema.type === 'integer' ? '1' : 'any',
        min: schema.minimum,
        max: schema.maximum,
      });
      read = (errors) => {
        const input = control as HTMLInputElement;
        if (input.value.trim() === '') {
          if (input.validity.badInput) errors.push({ node, message: t('notANumber') });
          return undefined;
        }
        return Number(input.value);
      };
    } else if (schema.type === 'string' && schema.format === 'date') {
      control = h('input', { ...common, type: 'date' });
      read = () => (control.value === '' ? undefined : control.value);
    } else if (schema.type === 'string' && (schema.maxLength ?? 0) > 200) {
      control = h('textarea', { ...common, rows: 3 });
      read = () => (control.value.trim() === '' ? undefined : control.value.trim());
    } else {
      control = h('input', { ...common, type: 'text', autocomplete: 'off' });
      read = () => (control.value.trim() === '' ? undefined : control.value.trim());
    }
    control.setAttribute('aria-describedby', describedBy.join(' '));
    const element =
      schema.type === 'boolean'
        ? h('div', { class: 'field field-checkbox' }, control, labelElement, hint, error)
        : h('div', { class: 'field' }, labelElement, hint, control, error);
    const node: Node = { element, read, slot: () => makeSlot(error, control) };
    return node;
  }

  function lines(schema: JsonSchema, pointer: string, name: string, required: boolean): Node {
    const id = uid('m');
    const error = errorElement();
    const hint = h('small', { id: uid('hint'), class: 'hint' }, t('oneValuePerLine'));
    const control = h('textarea', { id, rows: 3, 'data-pointer': pointer, 'aria-describedby': `${hint.id} ${error.id}`, 'aria-required': required ? 'true' : null });
    const element = h(
      'div',
      { class: 'field' },
      h('label', { for: id }, labelOf(pointer, schema, name), required ? h('span', { class: 'required' }, ` (${t('required')})`) : null),
      hint,
      control,
      error,
    );
    const itemType = schema.items?.type;
    return {
      element,
      read: () => {
        const values = control.value.split('\n').map((s) => s.trim()).filter((s) => s !== '');
        if (values.length === 0) return undefined;
        return itemType === 'integer' || itemType === 'number' ? values.map(Number) : values;
      },
      slot: () => makeSlot(error, control),
    };
  }

  function group(schema: JsonSchema, pointer: string, name: string, required: boolean): Node {
    const error = errorElement();
    const list = h('div', { class: 'array-items' });
    const items: Array<{ node: Node; wrapper: HTMLElement }> = [];
    const legendText = labelOf(pointer, schema, name);
    const addButton = h('button', { type: 'button', class: 'secondary' }, `${t('addItem')} — ${legendText}`);
    function renumber() {
      items.forEach((item, index) => {
        const legend = item.wrapper.querySelector('legend');
        if (legend) legend.textContent = t('item', { n: index + 1 });
      });
    }
    function addItem() {
      const index = items.length;
      const node = build(schema.items ?? {}, `${pointer}/${index}`, String(index), true, true);
      const remove = h('button', { type: 'button', class: 'secondary' }, t('removeItem'));
      const wrapper = h('fieldset', { class: 'array-item' }, h('legend', null, t('item', { n: index + 1 })), node.element, remove);
      const entry = { node, wrapper };
      remove.addEventListener('click', () => {
        items.splice(items.indexOf(entry), 1);
        wrapper.remove();
        renumber();
        addButton.focus();
      });
      items.push(entry);
      list.appendChild(wrapper);
    }
    addButton.addEventListener('click', () => {
      addItem();
      items[items.length - 1]?.wrapper.querySelector<HTMLElement>('input, select, textarea')?.focus();
    });
    if (required) for (let i = 0; i < Math.max(1, schema.minItems ?? 1); i++) addItem();
    const element = h(
      'fieldset',
      { class: 'array' },
      h('legend', null, legendText, required ? h('span', { class: 'required' }, ` (${t('required')})`) : null),
      list,
      addButton,
      error,
    );
    return {
      element,
      read: (errors) => {
        const values = items.map((item) => item.node.read(errors));
        return values.length === 0 ? undefined : values;
      },
      slot: (path) => {
        const [head, ...rest] = path;
        const item = head === undefined ? undefined : items[Number(head)];
        return item === undefined ? makeSlot(error, addButton) : item.node.slot(rest);
      },
    };
  }

  function object(schema: JsonSchema, pointer: string, name: string, required: boolean, bare: boolean): Node {
    const error = errorElement();
    const required_ = new Set(schema.required ?? []);
    const children = new Map<string, Node>();
    for (const [key, child] of Object.entries(schema.properties ?? {})) {
      children.set(key, build(child, `${pointer}/${key}`, key, required_.has(key), false));
    }
    const parts = [...children.values()].map((c) => c.element);
    const element = bare
      ? h('div', { class: 'object' }, parts, error)
      : h(
          'fieldset',
          { class: 'object' },
          h('legend', null, labelOf(pointer, schema, name), required ? h('span', { class: 'required' }, ` (${t('required')})`) : null),
          parts,
          error,
        );
    const first = () => element.querySelector<HTMLElement>('input, select, textarea') ?? element;
    return {
      element,
      read: (errors) => {
        const value: Record<string, unknown> = {};
        for (const [key, child] of children) {
          const v = child.read(errors);
          if (v !== undefined) value[key] = v;
        }
        return Object.keys(value).length === 0 && !bare ? undefined : value;
      },
      slot: (path) => {
        const [head, ...rest] = path;
        const child = head === undefined ? undefined : children.get(head);
        return child === undefined ? makeSlot(error, first()) : child.slot(rest);
      },
    };
  }

  function build(schema: JsonSchema, pointer: string, name: string, required: boolean, bare: boolean): Node {
    if (schema.type === 'object') return object(schema, pointer, name, required, bare);
    if (schema.type === 'array') return schema.items?.type === 'object' ? group(schema, pointer, name, required) : lines(schema, pointer, name, required);
    return leaf(schema, pointer, name, required);
  }

  const root = object(description.schema, '', description.name, true, true);
  return {
    element: root.element,
    read() {
      const errors: Array<{ node: Node; message: string }> = [];
      const value = (root.read(errors) ?? {}) as Record<string, unknown>;
      for (const e of errors) e.node.slot([]).show(e.message);
      return { value, ok: errors.length === 0 };
    },
    showIssue(pointer, message) {
      const slot = root.slot(pointer.split('/').slice(1).filter((s) => s !== ''));
      slot.show(message);
      return slot;
    },
    clearIssues() {
      for (const e of errorElements) {
        e.hidden = true;
        e.textContent = '';
      }
      for (const c of invalidControls.splice(0)) c.removeAttribute('aria-invalid');
    },
  };
}
