// Types for the preact that `htm/preact/standalone` bundles (preact 10 with its hooks).
// htm ships its own declarations (node_modules/htm/preact/index.d.ts), but they import
// 'preact' and 'preact/hooks', and preact itself is not a dependency: the browser loads the
// bundle, nothing else. These are the parts of preact 10's own declarations that htm's
// re-export exposes and the dashboard uses, so `tsc` checks the hooks' types.
// Ambient modules win over node_modules: delete this file if preact becomes a devDependency.

declare module 'preact' {
  export interface VNode<P = object> {
    type: unknown;
    props: P & { children?: unknown };
    key: unknown;
  }
  export abstract class Component<P = object, S = object> {
    constructor(props?: P, context?: unknown);
    props: Readonly<P>;
    state: Readonly<S>;
    setState<K extends keyof S>(state: Partial<S> | ((prev: Readonly<S>, props: Readonly<P>) => Pick<S, K> | Partial<S> | null) | null, callback?: () => void): void;
    forceUpdate(callback?: () => void): void;
    abstract render(props?: Readonly<P>, state?: Readonly<S>, context?: unknown): VNode | string | number | null;
  }
  export function h(type: unknown, props: Record<string, unknown> | null, ...children: unknown[]): VNode;
}

declare module 'preact/hooks' {
  export type Inputs = ReadonlyArray<unknown>;
  export type StateUpdater<S> = S | ((prevState: S) => S);
  export type Dispatch<A> = (value: A) => void;
  export type EffectCallback = () => void | (() => void);
  export interface MutableRef<T> {
    current: T;
  }
  export type Reducer<S, A> = (prevState: S, action: A) => S;

  export function useState<S>(initialState: S | (() => S)): [S, Dispatch<StateUpdater<S>>];
  export function useState<S = undefined>(): [S | undefined, Dispatch<StateUpdater<S | undefined>>];
  export function useReducer<S, A>(reducer: Reducer<S, A>, initialState: S): [S, Dispatch<A>];
  export function useReducer<S, A, I>(reducer: Reducer<S, A>, initialArg: I, init: (arg: I) => S): [S, Dispatch<A>];
  export function useRef<T>(initialValue: T): MutableRef<T>;
  export function useRef<T = undefined>(): MutableRef<T | undefined>;
  export function useEffect(effect: EffectCallback, inputs?: Inputs): void;
  export function useLayoutEffect(effect: EffectCallback, inputs?: Inputs): void;
  export function useMemo<T>(factory: () => T, inputs: Inputs | undefined): T;
  export function useCallback<T extends (...args: never[]) => unknown>(callback: T, inputs: Inputs): T;
}
