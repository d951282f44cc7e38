from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param) or 1
        if raw in self.last_page_strings:
            return raw
        try:
            number = int(raw)
        except (TypeError, ValueError):
            raise ValidationError(
                {"page": ["A page number must be a whole number of 1 or more."]}
            ) from None
        if number < 1:
            raise ValidationError({"page": ["A page number must be a whole number of 1 or more."]})
        return number

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound:  # DRF's answer to a page past the end
            raise ValidationError(
                {"page": [f"Page {request.query_params.get('page')} does not exist."]}
            ) from None
